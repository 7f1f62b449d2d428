"""The running process: the server, uvicorn options, systemd notify, the install
self-check, logging, and the runtime that holds the app's parts."""
