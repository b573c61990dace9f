"""The HTTPS webhook: the ASGI app (app) and how it reads bodies (bodies), the review process
for large bodies (worker), connection limits (connections, accept), certificates (certs,
certwatch), metrics and logs (telemetry), and `secretpatch serve` itself (run)."""
