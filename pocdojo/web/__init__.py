"""The browser app: the built bundle under ``static/`` (sources in the repository's ``web/``)
and the routes that serve it. Nothing here runs Node; ``pip install`` ships the bundle."""
