"""Proxies that follow the routes: the control plane says where each instance serves, and an
existing proxy (HAProxy through its runtime API, nginx re-rendered) sends clients there."""
