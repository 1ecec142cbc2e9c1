"""zapa-bridge: the integration layer between the zapw WhatsApp bridge and Zapa."""
