"""Delivering posts exactly once: planning deliveries, time slots, sending and recording."""
