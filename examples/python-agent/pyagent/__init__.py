"""Example agentwire agent in Python: gRPC (grpcio) and Unix-socket framing (asyncio)."""
