// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IStudyRegistry} from "../interfaces/IStudyRegistry.sol";

/// @title StudyRegistry
/// @notice Imaging sites register the studies they hold under opaque keys, with a Merkle root over
/// each study's content, so anyone holding a released instance can verify it against the chain.
/// @dev Sites hold `SITE_ROLE`, granted and revoked by the admin (`DEFAULT_ADMIN_ROLE`).
contract StudyRegistry is IStudyRegistry, AccessControl {
    /// @dev Three slots, laid out for the two hot paths:
    /// slot 0, 20 + 6 = 26 bytes: `patient`, `registeredAt`. `patientOf` (every AccessLog record)
    ///   reads this slot alone.
    /// slot 1, 20 + 4 + 4 = 28 bytes: `site`, `version`, `instanceCount`. `updateContent` reads it
    ///   for the site check and rewrites it, so an update touches slots 1 and 2 only.
    /// slot 2, 32 bytes: `contentRoot`.
    struct Study {
        address patient;
        uint48 registeredAt;
        address site;
        uint32 version;
        uint32 instanceCount;
        bytes32 contentRoot;
    }

    /// @notice Role of imaging sites, which register studies.
    bytes32 public constant SITE_ROLE = keccak256("SITE_ROLE");

    mapping(bytes32 studyKey => Study) private _studies;

    /// @notice Deploys the registry with `admin` as its only administrator.
    /// @param admin Receives `DEFAULT_ADMIN_ROLE`, and so may grant and revoke `SITE_ROLE`.
    constructor(address admin) {
        if (admin == address(0)) revert StudyRegistryZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IStudyRegistry
    function registerStudy(bytes32 studyKey, address patient, bytes32 contentRoot, uint32 instanceCount)
        external
        onlyRole(SITE_ROLE)
    {
        if (studyKey == bytes32(0)) revert StudyRegistryZeroStudyKey();
        if (patient == address(0)) revert StudyRegistryZeroPatient();
        _checkContent(contentRoot, instanceCount);
        if (_studies[studyKey].patient != address(0)) revert StudyRegistryStudyExists(studyKey);
        _studies[studyKey] = Study(patient, uint48(block.timestamp), msg.sender, 1, instanceCount, contentRoot);
        emit StudyRegistered(studyKey, patient, msg.sender, contentRoot, instanceCount);
    }

    /// @inheritdoc IStudyRegistry
    function updateContent(bytes32 studyKey, bytes32 contentRoot, uint32 instanceCount)
        external
        onlyRole(SITE_ROLE)
    {
        _checkContent(contentRoot, instanceCount);
        Study storage s = _studies[studyKey];
        address site = s.site;
        if (site == address(0)) revert StudyRegistryUnknownStudy(studyKey);
        if (site != msg.sender) revert StudyRegistryNotStudySite(studyKey, msg.sender);
        uint32 version = s.version + 1;
        s.version = version;
        s.instanceCount = instanceCount;
        s.contentRoot = contentRoot;
        emit ContentUpdated(studyKey, version, contentRoot, instanceCount);
    }

    /// @inheritdoc IStudyRegistry
    function studyOf(bytes32 studyKey)
        external
        view
        returns (address patient, address site, bytes32 contentRoot, uint32 instanceCount, uint48 registeredAt)
    {
        Study storage s = _knownStudy(studyKey);
        return (s.patient, s.site, s.contentRoot, s.instanceCount, s.registeredAt);
    }

    /// @inheritdoc IStudyRegistry
    function patientOf(bytes32 studyKey) external view returns (address) {
        return _studies[studyKey].patient;
    }

    /// @inheritdoc IStudyRegistry
    function contentVersionOf(bytes32 studyKey) external view returns (uint32) {
        return _knownStudy(studyKey).version;
    }

    /// @inheritdoc IStudyRegistry
    function verifyInstance(bytes32 studyKey, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, _knownStudy(studyKey).contentRoot, leaf);
    }

    function _checkContent(bytes32 contentRoot, uint32 instanceCount) internal pure {
        if (contentRoot == bytes32(0) || instanceCount == 0) {
            revert StudyRegistryInvalidContent(contentRoot, instanceCount);
        }
    }

    function _knownStudy(bytes32 studyKey) internal view returns (Study storage s) {
        s = _studies[studyKey];
        if (s.patient == address(0)) revert StudyRegistryUnknownStudy(studyKey);
    }
}
