"""Networks and the guidance method: the VQ-VAE (:mod:`.vqvae`, encoder and
decoder, quantisers), the activation surrogate (:mod:`.surrogate`), the token
prior and the diffusion baseline, and guidance (:mod:`.guidance`: schedule,
objective, batched optimisation, ranking; :mod:`.guidance_losses`,
:mod:`.latent_search`). Each model module also loads its checkpoints.

Floor: imports :mod:`dataset` (normalisation) and :mod:`utils`. Never engine,
render, metrics, options or a script.
"""
