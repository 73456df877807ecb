"""The weights that ship inside the package: ``<architecture>_<tag>.pt`` checkpoints, their model
cards (``.md``) and ``SHA256SUMS``. Data only: :mod:`deepfer.models.pretrained` lists and loads them
(``deepfer.models.create_model(name, pretrained=tag)``, ``deepfer.models.list_pretrained()``)."""
