"""Training losses: adversarial, foreground reconstruction, ID-MRF and cosine multi-scale, on a shared VGG."""

from selfie_avatar.losses.adversarial import (
    AdversarialLoss,
    DiscriminatorLoss,
    d_logistic_loss,
    g_nonsaturating_loss,
    r1_penalty,
)
from selfie_avatar.losses.cosine import CosineMultiScaleLoss, cosine_feature_loss, cosine_multiscale_loss
from selfie_avatar.losses.id_mrf import IDMRFLoss, id_mrf_layer, id_mrf_loss
from selfie_avatar.losses.reconstruction import ForegroundReconstructionLoss, foreground_reconstruction_loss
from selfie_avatar.losses.registry import (
    DEFAULT_LOSS_WEIGHTS,
    LOSS_NAMES,
    GeneratorLoss,
    parse_loss_overrides,
    resolve_loss_weights,
)
from selfie_avatar.losses.vgg import VGGFeatures, VGGSource, map_layers_to_vgg16, resolve_vgg_weights

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "LOSS_NAMES",
    "AdversarialLoss",
    "CosineMultiScaleLoss",
    "DiscriminatorLoss",
    "ForegroundReconstructionLoss",
    "GeneratorLoss",
    "IDMRFLoss",
    "VGGFeatures",
    "VGGSource",
    "cosine_feature_loss",
    "cosine_multiscale_loss",
    "d_logistic_loss",
    "foreground_reconstruction_loss",
    "g_nonsaturating_loss",
    "id_mrf_layer",
    "id_mrf_loss",
    "map_layers_to_vgg16",
    "parse_loss_overrides",
    "r1_penalty",
    "resolve_loss_weights",
    "resolve_vgg_weights",
]
