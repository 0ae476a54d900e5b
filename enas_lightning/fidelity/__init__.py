"""``task=fidelity``: how far a finished search's shared weights rank architectures as retraining does.

``search_run`` finds the search run and merges this command's settings into its config,
``candidates`` samples the architectures, ``rows`` keeps the table and what a resume may keep of
it, ``summary`` turns the rows into the correlations, the JSON and the logged metrics, ``stats``
holds the rank statistics and the bootstrap, ``plot`` the scatter plot. The task itself
(:mod:`enas_lightning.tasks.fidelity`) scores, retrains and calls them in order.
"""
