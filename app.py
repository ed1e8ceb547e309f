"""Hugging Face Spaces entry point: ``python app.py`` serves Oviya on 0.0.0.0:7860 (see README.md)."""

from oviya.server.app import main

if __name__ == "__main__":
    main()
