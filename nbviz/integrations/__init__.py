"""nbviz inside the training loops people do not write themselves.

- `nbviz.integrations.lightning`: ``NbvizCallback`` for PyTorch Lightning's ``Trainer``
  (``pip install 'nbviz[lightning]'``).
- `nbviz.integrations.huggingface`: ``NbvizCallback`` for Hugging Face's ``Trainer``
  (``pip install 'nbviz[huggingface]'``).

Each callback shows the training monitor (`nbviz.watch`) and a live confusion matrix
(`nbviz.ConfusionMatrix`) of the validation set, and records both to a run directory
with ``logdir=``. This package imports neither framework: import the module of the one
you use (``import nbviz`` imports neither).
"""
