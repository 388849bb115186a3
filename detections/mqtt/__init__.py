"""The MQTT bridge: events out to a broker, Home Assistant discovery, detections in (docs/mqtt.md)."""
