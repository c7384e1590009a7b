"""Real test infrastructure shipped with the package (no mocks): a local OpenAI-compatible HTTP server."""
