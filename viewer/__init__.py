"""The run in Rerun: a live run's picture (`thalamus run --view`, ``actor.py``) and a stored run's
(`thalamus view`, ``store.py``), both logged by ``episodes.py`` into the layout of ``layout.py``, sent
where ``target.py`` says. rerun-sdk is an extra (``pip install 'thalamus[view]'``): nothing here
imports it before a viewer is asked for."""
