"""Glue for training loops: beta that follows the learning rate (``hooks``) and a Lightning callback."""
