"""Indexes of the real releases, each reading the annotation files and folders exactly as the release unpacks.

| config | class | release |
|---|---|---|
| `data=k400`, `k600`, `k700` | `Kinetics(root, version=400/600/700)` | CVDF Kinetics-400 / 600 / 700-2020 |
| `data=ssv2` | `SomethingSomethingV2(root)` | Something-Something v2 (Qualcomm/20BN) |
| `data=epic100` | `EpicKitchens100(root, source="frames"/"videos")` | EPIC-KITCHENS-100 (verb + noun) |
| `data=mit` | `MomentsInTime(root)` | Moments in Time (Moments_in_Time_Raw.zip) |

Each follows the `VideoIndex` protocol of `vivit.datamodules.datamodule` (`classes`, `records(split)`, `prepare()`);
parsed records are cached (see `common.RecordCache`).
"""

from .common import RecordCache, ReleaseIndex
from .epic100 import EpicKitchens100
from .kinetics import Kinetics
from .mit import MomentsInTime
from .ssv2 import SomethingSomethingV2

__all__ = ["Kinetics", "SomethingSomethingV2", "EpicKitchens100", "MomentsInTime", "ReleaseIndex", "RecordCache"]
