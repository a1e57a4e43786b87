"""Evaluation: Hofstede alignment from VSM answers, opinion alignment, content moderation, reports.

Modules: ``hofstede`` (VSM 2013 indices and distance), ``metrics`` (option distributions, JSD
similarity, macro-F1), ``answers`` (multiple-choice prompts, the sampled-answer parser), ``methods``
(the method registry), ``context`` (adapters and gate from the config), ``runner`` (the command's engine
actors and the Ray Data job), ``jobs`` (rows from questions x targets x methods), ``vsm_eval`` / ``opinions`` /
``moderation`` (the three evaluations), ``countries`` (named country sets), ``report`` and
``plots`` (report folder files).
"""
