"""The extraction arm (docs/extract.md): does question-answer text for some facts make the others extractable?"""
