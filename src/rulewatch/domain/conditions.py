"""Gatus-style conditions: parse on save, evaluate against an Observation. (Being written.)"""
