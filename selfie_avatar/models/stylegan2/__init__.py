"""StyleGAN2 building blocks (Karras et al. 2020), pure-PyTorch reference implementations."""

from .blocks import ConvLayer, ResBlock
from .layers import LRELU_GAIN, EqualConv2d, EqualLinear, bias_act
from .mapping import MappingNetwork, pixel_norm
from .minibatch_std import MinibatchStd
from .modulated_conv import ModulatedConv2d
from .noise import NOISE_MODES, NoiseInjection, noise_mode
from .resample import DEFAULT_KERNEL, Blur, Downsample, Upsample, make_kernel, upfirdn2d
from .synthesis import StyledConv, SynthesisNetwork, channel_dict, is_power_of_two
from .torgb import ToRGB

__all__ = [
    "LRELU_GAIN", "EqualConv2d", "EqualLinear", "bias_act",
    "DEFAULT_KERNEL", "Blur", "Downsample", "Upsample", "make_kernel", "upfirdn2d",
    "ModulatedConv2d", "NOISE_MODES", "NoiseInjection", "noise_mode", "MappingNetwork", "pixel_norm", "ToRGB",
    "MinibatchStd", "ConvLayer", "ResBlock", "StyledConv", "SynthesisNetwork", "channel_dict", "is_power_of_two",
]
