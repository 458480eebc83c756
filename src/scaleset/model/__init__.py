"""Resource models shaped after Azure Resource Manager JSON.

Wire names are camelCase (ARM's); Python attributes are snake_case. Every model
accepts both spellings on input and keeps unknown fields, so a client's body
round-trips through scaleset unchanged apart from the fields we own.
"""
