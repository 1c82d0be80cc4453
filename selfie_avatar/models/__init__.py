"""models stage: StyleGAN2 blocks, the avatar generators (face texture, background, StyleUNet) and the discriminator."""

from .avatar import AvatarGenerator
from .background_generator import BackgroundGenerator
from .config import ModelConfig
from .discriminator import Discriminator
from .face_generator import FaceGenerator
from .image_generator import ImageGenerator
from .warp import TextureWarp, warp_texture

__all__ = [
    "AvatarGenerator", "BackgroundGenerator", "Discriminator", "FaceGenerator", "ImageGenerator", "ModelConfig",
    "TextureWarp", "warp_texture",
]
