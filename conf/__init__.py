# Makes conf/ the package lightning_aug.conf in the wheel (see pyproject.toml), so the Hydra apps
# find their configs with pkg://lightning_aug.conf after a non-editable install.
