"""The node agent: runs the instances the control plane gives it, snapshots them, fences itself."""
