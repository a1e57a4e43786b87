"""Evaluation: Hofstede alignment from VSM 2013 answers, moderation F1, opinion alignment, reports."""
