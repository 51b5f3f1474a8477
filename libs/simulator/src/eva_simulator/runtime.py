"""The running simulator's collaborators, shared by the routers through FastAPI dependencies."""

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from eva_simulator.settings import Settings
from eva_simulator.state import SimulatorState
from eva_simulator.statuses import StatusEmitter
from eva_simulator.webhooks import WebhookSender


@dataclass
class Simulator:
    """Everything one simulator instance holds; built by :func:`eva_simulator.app.create_app`."""

    settings: Settings
    state: SimulatorState
    sender: WebhookSender
    statuses: StatusEmitter
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.statuses.aclose()
        await self.sender.aclose()
        await self.http.aclose()


def get_simulator(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]
