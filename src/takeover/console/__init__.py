"""The web console served at /ui (server-rendered, htmx)."""
