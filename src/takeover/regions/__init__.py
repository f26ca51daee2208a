"""Client-side multi-region database failover for applications (document 004).

from takeover.regions import MultiRegion
regions = MultiRegion.from_file(Path("multi-region.toml"))
regions.start()                                   # health checks and failback
rows = regions.query_with_failover("emp", "SELECT * FROM item WHERE code = %s", ["7530110"])
"""

from takeover.domain.regions import AllRegionsFailed, EventKind, GroupPolicy, RegionEvent, RegionSpec
from takeover.regions.config import (
    ConfigError,
    GroupConfig,
    MultiRegionConfig,
    PolicyConfig,
    RegionConfig,
    load_config,
)
from takeover.regions.group import ReadOnlyRegion, RegionGroup
from takeover.regions.manager import MultiRegion, UnknownGroup
from takeover.regions.statements import is_write

__all__ = [
    "AllRegionsFailed",
    "ConfigError",
    "EventKind",
    "GroupConfig",
    "GroupPolicy",
    "MultiRegion",
    "MultiRegionConfig",
    "PolicyConfig",
    "ReadOnlyRegion",
    "RegionConfig",
    "RegionEvent",
    "RegionGroup",
    "RegionSpec",
    "UnknownGroup",
    "is_write",
    "load_config",
]
