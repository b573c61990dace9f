"""The patch: RFC 6902 operations against the pod as it arrived (pod_patch, with one overlay
per list it changes), the merge modes that decide them (modes), the read-only view through
which they see the pod (view), and the record of what they asked, for the memo (recorded)."""
