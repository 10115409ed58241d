"""Transfer: open-ended random generation, MCQ answer balance and NoveltyBench."""
