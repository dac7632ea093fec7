"""The GPT judge (gpt.py): protocols, cache and Judgment rows over any OpenAI-compatible endpoint, through engine.llm's client; the offline judge is engine.evaluation.offline_judge."""
