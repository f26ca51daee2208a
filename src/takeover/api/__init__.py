"""The HTTP API: ``takeover.api.app.create_app`` builds it; ``schemas`` is what agents share.

Nothing is imported here, so that an agent reading the schemas does not load the server.
"""
