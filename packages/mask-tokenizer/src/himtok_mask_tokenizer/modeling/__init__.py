"""Pure ``nn.Module`` building blocks of the tokenizer (no preprocessing, no checkpoint logic)."""

from himtok_mask_tokenizer.modeling.decoder import TokenDecoder
from himtok_mask_tokenizer.modeling.encoder import ConvStem, MaskEncoder, encoder_attention_mask
from himtok_mask_tokenizer.modeling.light_head import LightPixelHead
from himtok_mask_tokenizer.modeling.linear_head import LinearPixelHead
from himtok_mask_tokenizer.modeling.pixel_decoder import ConvPixelDecoder, ResnetBlock, UpsamplingBlock
from himtok_mask_tokenizer.modeling.transformer import ResidualAttentionBlock, SelfAttention, build_blocks

__all__ = [
    "ConvPixelDecoder",
    "ConvStem",
    "LightPixelHead",
    "LinearPixelHead",
    "MaskEncoder",
    "ResidualAttentionBlock",
    "ResnetBlock",
    "SelfAttention",
    "TokenDecoder",
    "UpsamplingBlock",
    "build_blocks",
    "encoder_attention_mask",
]
