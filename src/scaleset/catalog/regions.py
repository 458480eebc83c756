"""How Azure names its regions: display names and geography groups, for ARM's location list.

The server accepts any region name a client writes; this table only says how
a region Azure also has is shown (``westus`` is "West US", "(US) West US").
A region not in it is shown by its own name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Region:
    name: str
    display_name: str
    geography_group: str | None = None

    @property
    def regional_display_name(self) -> str:
        """ARM's ``regionalDisplayName``: ``(US) West US``; the plain name without a group."""
        if self.geography_group is None:
            return self.display_name
        return f"({self.geography_group}) {self.display_name}"


_KNOWN: Final = {r.name: r for r in (
    Region("eastus", "East US", "US"), Region("eastus2", "East US 2", "US"),
    Region("southcentralus", "South Central US", "US"), Region("westus", "West US", "US"),
    Region("westus2", "West US 2", "US"), Region("westus3", "West US 3", "US"),
    Region("centralus", "Central US", "US"), Region("northcentralus", "North Central US", "US"),
    Region("westcentralus", "West Central US", "US"),
    Region("canadacentral", "Canada Central", "Canada"),
    Region("canadaeast", "Canada East", "Canada"),
    Region("brazilsouth", "Brazil South", "South America"),
    Region("northeurope", "North Europe", "Europe"), Region("westeurope", "West Europe", "Europe"),
    Region("uksouth", "UK South", "UK"), Region("ukwest", "UK West", "UK"),
    Region("francecentral", "France Central", "Europe"),
    Region("germanywestcentral", "Germany West Central", "Europe"),
    Region("swedencentral", "Sweden Central", "Europe"),
    Region("switzerlandnorth", "Switzerland North", "Europe"),
    Region("norwayeast", "Norway East", "Europe"), Region("polandcentral", "Poland Central",
                                                          "Europe"),
    Region("italynorth", "Italy North", "Europe"),
    Region("eastasia", "East Asia", "Asia Pacific"),
    Region("southeastasia", "Southeast Asia", "Asia Pacific"),
    Region("japaneast", "Japan East", "Asia Pacific"),
    Region("japanwest", "Japan West", "Asia Pacific"),
    Region("koreacentral", "Korea Central", "Asia Pacific"),
    Region("australiaeast", "Australia East", "Asia Pacific"),
    Region("australiasoutheast", "Australia Southeast", "Asia Pacific"),
    Region("centralindia", "Central India", "Asia Pacific"),
    Region("southindia", "South India", "Asia Pacific"),
    Region("uaenorth", "UAE North", "Middle East"),
    Region("qatarcentral", "Qatar Central", "Middle East"),
    Region("southafricanorth", "South Africa North", "Africa"),
)}


def region(name: str) -> Region:
    """How the region called ``name`` (already normalised) is shown.

    >>> region("westus").regional_display_name, region("lab1").display_name
    ('(US) West US', 'lab1')
    """
    return _KNOWN.get(name) or Region(name, name)
