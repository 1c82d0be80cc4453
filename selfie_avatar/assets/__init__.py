"""One place that resolves every model file the toolkit uses; nothing is ever downloaded at run time."""

from selfie_avatar.assets.registry import ASSETS, Asset, AssetStatus, asset_status, resolve_asset, weights_dirs
from selfie_avatar.assets.record import assets_record

__all__ = ["ASSETS", "Asset", "AssetStatus", "asset_status", "resolve_asset", "weights_dirs", "assets_record"]
