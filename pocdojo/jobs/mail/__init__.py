"""Email for notifications: tenant templates (``templates``), the sandbox they run in
(``sandbox``), messages (``message``) and the backends that deliver them (``backends``)."""
