"""Private helpers of torch-absld: argument checks, collectives, compilation, module modes.

Nothing here is public API: names and signatures may change in any release.
"""
