"""Data for the segmentation nets: labelled synthetic street video and a CamVid-format loader."""
