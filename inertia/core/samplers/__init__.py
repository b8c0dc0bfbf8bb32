"""Momentum samplers' math: PLMS/GHVB/NT (Wizadwongsa & Suwajanakorn 2023), heavy ball on DPM-Solver++."""
