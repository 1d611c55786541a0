"""The pretrain stage: foundation models (text LM, CLAP, video CNN) trained on the captioned
foundation corpus and written in the formats their real counterparts ship in."""
