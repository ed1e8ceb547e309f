"""Wiring only: the FastRTC handler, the Gradio UI, the HTTP/websocket API. No voice logic lives here."""
