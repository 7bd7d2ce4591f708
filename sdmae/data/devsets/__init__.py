"""Development data: labelled datasets written in the benchmarks' layouts.

``synthetic``  the embedded synthetic street scene (demo and test data)
``footage``    dev sets cut from real fixed-camera footage, anomalies made of the footage
``writing``    the clips both hand over, and the atomic, cached write of a dataset tree

Scoring never imports these; the submodules load on use.
"""
