"""The patch: RFC 6902 operations against the pod as it arrived (pod_patch), the merge modes
that decide them (modes), and the read-only view through which they see the pod (view)."""
