"""A plugin whose import fails, as when one of its own dependencies is missing.

Had it loaded, it would have provided the regularizer ``dummy-sharp``.
"""

raise ImportError("specmatch_dummy.broken needs the 'sharpness' package (pip install sharpness)")
