"""Training the shipped mini-canvas models from scratch: ``erase mini-canvas train``.

``architecture.py`` fixes the model shapes, ``data.py`` renders the training set, ``vae.py``
and ``text_to_image.py`` train the autoencoder and the UNet + text encoder, ``build.py`` runs
everything (judge and mini CLIP included) and writes the package data, ``quality.py`` measures
the quality bars the README reports.
"""
