"""Talking to the machine: the command runner, systemctl, safe file reads and writes."""
