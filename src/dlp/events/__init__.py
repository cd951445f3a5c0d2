"""Live progress of training jobs: events published by workers, streamed to clients.

``payloads`` builds the events, ``bus`` carries them between processes,
``stream`` merges them with the database into one gap-free stream per job, and
``delivery`` and ``router`` put that stream on the wire (Server-Sent Events and
WebSocket).
"""
