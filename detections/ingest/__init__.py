"""The ingest body and its errors, shared by every ingest path (HTTP, MQTT)."""
