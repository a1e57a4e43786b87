"""What the session's Serve app (the ``serve_app`` fixture) is started with, for the tests that call it."""

SERVE_API_KEY = "test-key-7f3a"
SERVE_TOKENS = 16  # max_tokens of the serve tests' requests
