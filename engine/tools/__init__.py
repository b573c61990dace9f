"""The operator's tools: golden cases (cases), lint, and Kubernetes objects (manifests,
webhook_config)."""
