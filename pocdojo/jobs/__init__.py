"""arq worker settings and tasks: reports, yearly videos, emails, search indexing."""
