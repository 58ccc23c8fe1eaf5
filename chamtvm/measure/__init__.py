"""Measurement: build kernel libraries and whole networks, time them on a device.

A runner takes a batch and returns one result per item, each with an error message where
it failed, so a crashed kernel, a timeout or a lost device never loses the rest.
"""

from .base import KernelBatch, KernelItem, MeasureResult, Runner

__all__ = ["KernelBatch", "KernelItem", "MeasureResult", "Runner"]
