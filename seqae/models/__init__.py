"""Neural networks of seqae: sequence autoencoders with a latent split into named blocks.

One module per concern:

* :mod:`~seqae.models.layout` - named latent blocks (split, join, swap).
* :mod:`~seqae.models.layers` - residual blocks, normalisation, pooling.
* :mod:`~seqae.models.encoder` / :mod:`~seqae.models.decoder` - the convolutional nets.
* :mod:`~seqae.models.heads` - gradient reversal, supervised and adversarial classifier heads.
* :mod:`~seqae.models.quantize` - vector quantisation (EMA codebooks, dead-code restart).
* :mod:`~seqae.models.variational` - Gaussian latent, KL, prior samples.
* :mod:`~seqae.models.objectives` - reconstruction, InfoMax, CPC, anomaly scores.
* :mod:`~seqae.models.augment` - reverse complement, crops, corruption, on device.
* :mod:`~seqae.models.settings` - settings defaults, presets and validation.
* :mod:`~seqae.models.context_decoder` - the local latent sequence and the autoregressive decoder;
  :mod:`~seqae.models.latent_conditioning` and :mod:`~seqae.models.latent_decoding` its latent side
  and its decoding from the latent alone.
* :mod:`~seqae.models.erasure` - linear erasure of foreign labels from a block.
* :mod:`~seqae.models.autoencoder` - :class:`SequenceAutoencoder` tying it together, with its groups
  of methods in :mod:`~seqae.models.bottleneck` (plain, VAE or VQ latent, erasure),
  :mod:`~seqae.models.decoder_terms` (the decoder's pass and losses), :mod:`~seqae.models.supervision`
  (label heads), :mod:`~seqae.models.scoring` (anomaly scores) and :mod:`~seqae.models.generation`
  (bases from latents alone).
"""

from seqae.models.autoencoder import ModelOutput, SequenceAutoencoder
from seqae.models.layout import LatentLayout
from seqae.models.settings import DEFAULT_MODEL_SETTINGS, MODEL_SETTINGS_HELP, SIZE_PRESETS, model_settings

__all__ = [
    "DEFAULT_MODEL_SETTINGS",
    "MODEL_SETTINGS_HELP",
    "SIZE_PRESETS",
    "LatentLayout",
    "ModelOutput",
    "SequenceAutoencoder",
    "model_settings",
]
