"""Sending: blast states, per-device pacing, and the worker that talks to the gateway."""
