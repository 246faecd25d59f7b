"""Host stand-ins for the board's buses (UART, SPI) on the MicroPython unix port."""
